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


__all__ = ["TestResult", "welch_anova", "classic_anova", "kruskal_wallis", "welch_t_test", "compare_groups"]
