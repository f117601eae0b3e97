from otter.test_files import test_case

OK_FORMAT = False

name = "q1_mask"
points = 2

@test_case(points=None, hidden=False)
def test_mask_shape(foreground_mask, images):
    import numpy as np
    from cellkit import checks
    checks.check_defined(foreground_mask, 'foreground_mask')
    m = np.asarray(foreground_mask(images[0, 0]))
    checks.check_shape(m, images.shape[-2:], name='foreground_mask(field)', hint='one value per pixel: (H, W), the channels summed')
    assert m.dtype == bool, f'expected a boolean mask, got dtype {m.dtype}: compare the labels with the foreground component'
    checks.check_in_range(m.mean(), 0.02, 0.8, name='foreground fraction', hint='cells cover a minority of the field: is foreground the component with the HIGHER mean?')

