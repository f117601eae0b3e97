from otter.test_files import test_case

OK_FORMAT = False

name = "q1_arc_margin"
points = 3

@test_case(points=None, hidden=False)
def test_arc_margin_basic(arc_margin_logits):
    import numpy as np
    from keras import ops
    from cellkit import checks
    checks.check_defined(arc_margin_logits, 'arc_margin_logits')
    cosine = np.array([[0.9, 0.1, -0.3]], np.float32)
    labels = np.array([[1.0, 0.0, 0.0]], np.float32)
    out = ops.convert_to_numpy(arc_margin_logits(ops.convert_to_tensor(cosine), ops.convert_to_tensor(labels)))
    checks.check_shape(out, (1, 3), name='arc_margin_logits(...)')
    checks.check_close(out[0, 1:], 30.0 * cosine[0, 1:], name='logits of the other classes', rtol=0.0001, hint='classes other than the label keep s * cos(theta)')
    theta = np.arccos(0.9)
    checks.check_close(out[0, 0], 30.0 * np.cos(theta + 0.5), name='logit of the true class', rtol=0.0001, hint='the true class gets s * cos(theta + m)')

