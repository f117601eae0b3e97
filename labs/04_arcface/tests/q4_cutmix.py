from otter.test_files import test_case

OK_FORMAT = False

name = "q4_cutmix"
points = 2

@test_case(points=None, hidden=False)
def test_cutmix_label(cutmix_pair):
    import numpy as np
    from cellkit import checks
    checks.check_defined(cutmix_pair, 'cutmix_pair')
    a, b = (np.zeros((10, 10, 2)), np.ones((10, 10, 2)))
    mixed, label = cutmix_pair(a, np.array([1.0, 0.0]), b, np.array([0.0, 1.0]), (2, 3, 5, 4))
    checks.check_close(label, [0.8, 0.2], name='mixed label for a 5x4 box in a 10x10 image', atol=1e-06, hint='lambda = 1 - box area / image area weighs label_a')
    checks.check_close(np.asarray(mixed).sum(), 5 * 4 * 2, name='number of pixels taken from image_b', atol=1e-06, hint='copy image_b[top:top+height, left:left+width] into a copy of image_a')

