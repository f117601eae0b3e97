from otter.test_files import test_case

OK_FORMAT = False

name = "q3_cnns"
points = 3

@test_case(points=None, hidden=False)
def test_wide_cnn(build_wide_cnn):
    from cellkit import checks
    checks.check_defined(build_wide_cnn, 'build_wide_cnn')
    model = build_wide_cnn()
    checks.check_output_shape(model, (2,), hint='two logits: Dense(2) without activation')
    checks.check_param_count(model, 3936674, hint='conv 3x3 with 32 filters, no padding, then Dense(32), Dense(2)')

@test_case(points=None, hidden=False)
def test_deeper_cnn(build_deeper_cnn):
    from cellkit import checks
    checks.check_defined(build_deeper_cnn, 'build_deeper_cnn')
    checks.check_param_count(build_deeper_cnn(), 519010, hint='four 3x3 convolutions (32, 64, 128, 256) with a 2x2 pooling between each')

