from otter.test_files import test_case

OK_FORMAT = False

name = "q6d_results"
points = 1

@test_case(points=None, hidden=False)
def test_fix_results(results, controls):
    from cellkit import checks
    checks.check_defined(results, 'results')
    assert len(results) == 6, f'expected 6 score dicts (the 4 controls and 2 for the fixed encoder), got {len(results)}'
    assert results[:4] == controls, 'start results with the four controls, in their order'
    for r in results:
        for key in ('test_ari', 'test_field_ari', 'train_field_ari', 'pair_separation'):
            checks.check_in_range(r[key], -1.0, 1.0, name=f"{key} of {r.get('representation', '?')}")
    assert results[5]['pair_result'].startswith('circular'), 'the fixed codes + features contain the features: pass uses_features=True'

