from otter.test_files import test_case

OK_FORMAT = False

name = "q2_count"
points = 2

@test_case(points=None, hidden=False)
def test_first_layer_params(first_layer_params):
    from cellkit import checks
    checks.check_answer(first_layer_params, 1216, name='first_layer_params', hint='5 x 5 kernel x 3 input channels (RGB) x 16 filters, plus 16 biases')

