"""Statistical tests for comparing groups of scores (e.g. F1 per cytokine under each augmentation), as tidy rows.

Each function returns a :class:`TestResult` (test name, statistic, degrees of
freedom, p-value, group sizes); :func:`compare_groups` returns the three
many-group tests as one DataFrame.  Which test answers which question:

* **Welch's ANOVA** (``statsmodels.stats.oneway.anova_oneway``, unequal variances):
  are the group *means* different, without assuming equal variances or sizes?
  It is parametric (it assumes roughly normal groups), not non-parametric.
* **classic one-way ANOVA** (``scipy.stats.f_oneway``): the same question assuming equal variances.
* **Kruskal-Wallis** (``scipy.stats.kruskal``): the rank-based, non-parametric test:
  does one group tend to give larger values?
* **Welch's t-test** (``scipy.stats.ttest_ind(equal_var=False)``): two groups, unequal variances.

These four treat the groups as *independent* samples.  When every group holds one
value per cytokine (the same cytokines scored under each strategy or by each model),
the values are *paired* by cytokine, and the tests that use the pairing remove the
cytokine-to-cytokine spread (some cytokines are easy for every model):

* **Friedman** (``scipy.stats.friedmanchisquare``): several strategies, blocks =
  cytokines; ranks the strategies within each cytokine (non-parametric);
* **Wilcoxon signed-rank** (``scipy.stats.wilcoxon``): two models, the signed ranks of
  the per-cytokine differences (non-parametric);
* **paired t-test** (``scipy.stats.ttest_rel``): two models, the mean per-cytokine
  difference (assumes roughly normal differences).

:func:`paired_table` lines the values up by cytokine; :func:`compare_paired` runs
Wilcoxon and the paired t-test as rows of a table.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One test's outcome: ``test``, ``statistic``, ``df`` (tuple), ``pvalue``, ``sizes`` (per group)."""

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    df: tuple
    pvalue: float
    sizes: tuple

    def as_dict(self) -> dict:
        """Return the result as a flat dict (one row of a tidy table)."""
        return {"test": self.test, "statistic": self.statistic,
                "df": ", ".join(f"{d:.3g}" for d in self.df), "pvalue": self.pvalue,
                "groups": len(self.sizes), "n": int(sum(self.sizes))}


def _groups(groups, at_least: int = 2):
    if isinstance(groups, dict):
        names, values = list(groups), list(groups.values())
    else:
        values = list(groups)
        names = [str(i) for i in range(len(values))]
    arrays = [np.asarray(v, dtype=np.float64).ravel() for v in values]
    if len(arrays) < at_least:
        raise ValueError(f"groups: {len(arrays)} group(s), expected at least {at_least}")
    small = [n for n, a in zip(names, arrays) if a.size < 2]
    if small:
        raise ValueError(f"groups: group(s) {', '.join(small)} have fewer than 2 values; expected at least 2 each")
    bad = [n for n, a in zip(names, arrays) if not np.all(np.isfinite(a))]
    if bad:
        raise ValueError(f"groups: group(s) {', '.join(bad)} contain NaN or infinite values")
    return arrays


def welch_anova(groups) -> TestResult:
    """Return Welch's one-way ANOVA (unequal variances) of ``groups`` (a dict name -> values, or a list)."""
    from statsmodels.stats.oneway import anova_oneway

    arrays = _groups(groups)
    res = anova_oneway(arrays, use_var="unequal", welch_correction=True)
    return TestResult("Welch's ANOVA", float(res.statistic), tuple(float(d) for d in np.atleast_1d(res.df)),
                      float(res.pvalue), tuple(a.size for a in arrays))


def classic_anova(groups) -> TestResult:
    """Return the classic one-way ANOVA (equal variances assumed) of ``groups``."""
    from scipy import stats

    arrays = _groups(groups)
    res = stats.f_oneway(*arrays)
    n, k = sum(a.size for a in arrays), len(arrays)
    return TestResult("classic ANOVA", float(res.statistic), (float(k - 1), float(n - k)), float(res.pvalue),
                      tuple(a.size for a in arrays))


def kruskal_wallis(groups) -> TestResult:
    """Return the Kruskal-Wallis H test (rank-based, non-parametric) of ``groups``."""
    from scipy import stats

    arrays = _groups(groups)
    res = stats.kruskal(*arrays)
    return TestResult("Kruskal-Wallis", float(res.statistic), (float(len(arrays) - 1),), float(res.pvalue),
                      tuple(a.size for a in arrays))


def welch_t_test(a, b) -> TestResult:
    """Return Welch's two-sample t-test (unequal variances) of ``a`` against ``b``."""
    from scipy import stats

    a, b = _groups([a, b])
    res = stats.ttest_ind(a, b, equal_var=False)
    df = float(getattr(res, "df", np.nan))
    return TestResult("Welch's t-test", float(res.statistic), (df,), float(res.pvalue), (a.size, b.size))


def compare_groups(groups):
    """Return a DataFrame with Welch's ANOVA, classic ANOVA and Kruskal-Wallis of ``groups``, one row each."""
    import pandas as pd

    return pd.DataFrame([t(groups).as_dict() for t in (welch_anova, classic_anova, kruskal_wallis)])


def _paired(a, b):
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"a, b: {a.size} and {b.size} values; paired tests need one value of each per cytokine")
    if a.size < 2:
        raise ValueError(f"a, b: {a.size} pair(s), expected at least 2")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a, b: contain NaN or infinite values")
    return a, b


def friedman(table) -> TestResult:
    """Return Friedman's test of a ``(blocks, treatments)`` table: rows = cytokines, columns = strategies.

    ``table``: a DataFrame (or 2-D array) with one row per cytokine and one column per
    strategy, every cell filled.  Needs at least 3 strategies and 2 cytokines.
    """
    from scipy import stats

    values = np.asarray(table, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 3 or values.shape[0] < 2:
        raise ValueError(f"table: shape {values.shape}, expected (cytokines >= 2, strategies >= 3): Friedman's "
                         "test compares at least 3 strategies (for 2 use the Wilcoxon signed-rank test)")
    if not np.all(np.isfinite(values)):
        raise ValueError("table: contains NaN or infinite values (a strategy not scored on some cytokine?)")
    res = stats.friedmanchisquare(*values.T)
    return TestResult("Friedman", float(res.statistic), (float(values.shape[1] - 1),), float(res.pvalue),
                      (values.shape[0],) * values.shape[1])


def wilcoxon_signed_rank(a, b) -> TestResult:
    """Return the Wilcoxon signed-rank test of paired values ``a`` and ``b`` (two-sided).

    scipy chooses the exact null distribution for small samples without ties or zero
    differences and the normal approximation otherwise; zero differences are dropped
    (``zero_method="wilcox"``).  All differences zero: the p-value is 1 (no evidence).
    """
    from scipy import stats

    a, b = _paired(a, b)
    d = a - b
    if not np.any(d):
        return TestResult("Wilcoxon signed-rank", 0.0, (0.0,), 1.0, (a.size, b.size))
    res = stats.wilcoxon(a, b)
    return TestResult("Wilcoxon signed-rank", float(res.statistic), (float(np.count_nonzero(d)),), float(res.pvalue),
                      (a.size, b.size))


def paired_t_test(a, b) -> TestResult:
    """Return the paired t-test (``scipy.stats.ttest_rel``) of ``a`` against ``b`` (two-sided).

    All differences equal: the test is undefined (p-value NaN).
    """
    from scipy import stats

    a, b = _paired(a, b)
    d = a - b
    if np.ptp(d) == 0:
        return TestResult("paired t-test", float("nan"), (float(a.size - 1),), float("nan"), (a.size, b.size))
    res = stats.ttest_rel(a, b)
    return TestResult("paired t-test", float(res.statistic), (float(a.size - 1),), float(res.pvalue),
                      (a.size, b.size))


def paired_table(frame, *, by: str, column: str, value: str = "f1", subset=None):
    """Return a wide table: one row per ``by`` (cytokine), one column per ``column`` (strategy or model).

    Rows missing a value in any column are dropped (pairs must be complete);
    ``subset`` keeps only those rows (e.g. the predictable cytokines).
    """
    wide = frame.pivot_table(index=by, columns=column, values=value, aggfunc="mean").dropna()
    if subset is not None:
        wide = wide.loc[[i for i in wide.index if i in set(subset)]]
    return wide


def compare_paired(a, b):
    """Return a DataFrame with the Wilcoxon signed-rank test and the paired t-test of ``a`` against ``b``."""
    import pandas as pd

    return pd.DataFrame([t(a, b).as_dict() for t in (wilcoxon_signed_rank, paired_t_test)])


__all__ = ["TestResult", "welch_anova", "classic_anova", "kruskal_wallis", "welch_t_test", "compare_groups",
           "friedman", "wilcoxon_signed_rank", "paired_t_test", "paired_table", "compare_paired"]
