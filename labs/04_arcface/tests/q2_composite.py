from otter.test_files import test_case

OK_FORMAT = False

name = "q2_composite"
points = 3

@test_case(points=None, hidden=False)
def test_composite_public(composite_loss):
    import numpy as np
    from cellkit import arcface, checks
    checks.check_defined(composite_loss, 'composite_loss')
    rng = np.random.default_rng(0)
    labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    logits = rng.normal(size=(8, 4)).astype(np.float32)
    cosine = rng.uniform(-1, 1, (8, 4)).astype(np.float32)
    expected = arcface.softmax_cross_entropy_reference(labels, logits).mean()
    checks.check_close(float(composite_loss(labels, logits, cosine, c=0.0)), expected, name='composite_loss with c=0', rtol=0.0001, hint='with c = 0 only the softmax cross-entropy remains, averaged over the batch')
    arc_logits = arcface.arc_margin_logits_reference(cosine, labels)
    expected = arcface.softmax_cross_entropy_reference(labels, arc_logits).mean()
    checks.check_close(float(composite_loss(labels, logits, cosine, c=1.0)), expected, name='composite_loss with c=1', rtol=0.0001, hint='with c = 1 only the ArcFace term remains: the cross-entropy of YOUR arc_margin_logits(cosine, labels), averaged over the batch')

