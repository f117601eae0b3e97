from otter.test_files import test_case

OK_FORMAT = False

name = "q5_scores"
points = 1

@test_case(points=None, hidden=False)
def test_scores_keys(clustering_scores):
    from cellkit import checks
    checks.check_defined(clustering_scores, 'clustering_scores')
    out = clustering_scores([0, 0, 1, 1], [1, 1, 0, 0])
    assert isinstance(out, dict) and set(out) == {'ari', 'nmi'}, f'expected a dict with keys ari and nmi, got {out!r}'
    checks.check_close(out['ari'], 1.0, name='ARI of a relabelled perfect clustering', hint='cluster numbers do not matter: use adjusted_rand_score')

