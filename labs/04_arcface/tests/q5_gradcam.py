from otter.test_files import test_case

OK_FORMAT = False

name = "q5_gradcam"
points = 3

@test_case(points=None, hidden=False)
def test_gradcam_shape(grad_cam_from):
    import numpy as np
    from cellkit import checks
    checks.check_defined(grad_cam_from, 'grad_cam_from')
    rng = np.random.default_rng(0)
    out = np.asarray(grad_cam_from(rng.normal(size=(2, 4, 5, 3)), rng.normal(size=(2, 4, 5, 3))))
    checks.check_shape(out, (2, 4, 5), name='grad_cam_from(...)', hint='sum over the last axis (the maps)')
    assert out.min() >= 0, f'Grad-CAM has negative values (min {out.min():.3g}): apply a ReLU'

