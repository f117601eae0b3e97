from otter.test_files import test_case

OK_FORMAT = False

name = "q6_fix"
points = 1

@test_case(points=None, hidden=False)
def test_fix_results(results):
    from cellkit import checks
    checks.check_defined(results, 'results')
    assert len(results) == 4, f'expected 4 score dicts (baseline and three fixes), got {len(results)}'
    for r in results:
        for key in ('test_ari', 'test_nmi', 'pair_separation'):
            checks.check_in_range(r[key], -1.0, 1.0, name=f"{key} of {r.get('representation', '?')}")

