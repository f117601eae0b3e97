from otter.test_files import test_case

OK_FORMAT = False

name = "q2_count"
points = 2

@test_case(points=None, hidden=False)
def test_first_layer_params(first_layer_params):
    from cellkit import checks
    checks.check_answer(first_layer_params, 1216, name='first_layer_params', mistakes=checks.conv_param_mistakes(5, 3, 16), hint='kernel height x kernel width x input channels x filters, plus one bias per filter')

