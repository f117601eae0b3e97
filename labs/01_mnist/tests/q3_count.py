from otter.test_files import test_case

OK_FORMAT = False

name = "q3_count"
points = 2

@test_case(points=None, hidden=False)
def test_conv2_params(conv2_params):
    from cellkit import checks
    checks.check_answer(conv2_params, 18496, name='conv2_params', hint='3 x 3 kernel x 32 input channels x 64 filters, plus 64 biases')

