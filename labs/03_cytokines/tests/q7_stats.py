from otter.test_files import test_case

OK_FORMAT = False

name = "q7_stats"
points = 2

@test_case(points=None, hidden=False)
def test_pvalues_known_values(augmentation_pvalues, welch_t_pvalue, friedman_pvalue, paired_pvalues):
    import numpy as np
    import pandas as pd
    from cellkit import checks
    out = augmentation_pvalues({'a': [0.1, 0.2, 0.3], 'b': [0.5, 0.6, 0.8], 'c': [0.2, 0.4, 0.3]})
    assert set(out) == {'welch', 'anova', 'kruskal'}, f'expected keys welch, anova, kruskal; got {sorted(out)}'
    for name, p in out.items():
        checks.check_in_range(p, 0.0, 1.0, name=f'{name} p-value')
    checks.check_close(welch_t_pvalue([1, 2, 3], [4, 5, 6]), 0.021312, name='Welch t p-value', atol=1e-05, hint='scipy.stats.ttest_ind(a, b, equal_var=False).pvalue')
    table = pd.DataFrame({'none': [0.5, 0.4, 0.6, 0.1], 'h': [0.6, 0.45, 0.61, 0.5], 'hvt': [0.7, 0.9, 0.62, 0.55]})
    checks.check_close(friedman_pvalue(table), np.exp(-4), name='Friedman p-value', atol=1e-06, hint='scipy.stats.friedmanchisquare with one argument per strategy (column)')
    paired = paired_pvalues([0.9, 0.8, 0.75, 0.95, 0.85], [0.5, 0.6, 0.3, 0.45, 0.8])
    assert set(paired) == {'wilcoxon', 'paired_t'}, f'expected keys wilcoxon, paired_t; got {sorted(paired)}'
    checks.check_close(paired['wilcoxon'], 0.0625, name='Wilcoxon p-value', atol=1e-09, hint='scipy.stats.wilcoxon(a, b): the exact two-sided p-value of 5 positive differences')

