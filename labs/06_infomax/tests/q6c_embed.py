from otter.test_files import test_case

OK_FORMAT = False

name = "q6c_embed"
points = 1

@test_case(points=None, hidden=False)
def test_fixed_codes(fixed_codes, baseline_codes):
    import numpy as np
    from cellkit import checks
    checks.check_defined(fixed_codes, 'fixed_codes')
    checks.check_shape(fixed_codes, baseline_codes.shape, name='fixed_codes', hint='(samples, fields, windows, code_dim): embed_fields(fixed_encoder, images, size=crop, stride=stride)')
    assert not np.allclose(fixed_codes, baseline_codes), 'fixed_codes equal the baseline codes: embed with fixed_encoder'

