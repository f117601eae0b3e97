from otter.test_files import test_case

OK_FORMAT = False

name = "q7_stats"
points = 2

@test_case(points=None, hidden=False)
def test_pvalues_are_probabilities(augmentation_pvalues, welch_t_pvalue):
    from cellkit import checks
    out = augmentation_pvalues({'a': [0.1, 0.2, 0.3], 'b': [0.5, 0.6, 0.8], 'c': [0.2, 0.4, 0.3]})
    assert set(out) == {'welch', 'anova', 'kruskal'}, f'expected keys welch, anova, kruskal; got {sorted(out)}'
    for name, p in out.items():
        checks.check_in_range(p, 0.0, 1.0, name=f'{name} p-value')
    checks.check_in_range(welch_t_pvalue([0.1, 0.2, 0.3], [0.5, 0.6, 0.8]), 0.0, 1.0, name='Welch t p-value')

