from otter.test_files import test_case

OK_FORMAT = False

name = "q3_count"
points = 2

@test_case(points=None, hidden=False)
def test_conv2_params(conv2_params):
    from cellkit import checks
    checks.check_defined(conv2_params, 'conv2_params')
    mistakes = {3 * 3 * 16 * 32: 'that is the weights only: add one bias per filter', 3 * 3 * 1 * 32 + 32: 'the second convolution reads the 16 channels of the first one, not 1', 3 * 3 * 32 + 32: "multiply by the input channels too (16, the first convolution's filters)"}
    if int(conv2_params) != 3 * 3 * 16 * 32 + 32:
        raise checks.CheckFailed(f'conv2_params = {conv2_params:,} is not right: ' + mistakes.get(int(conv2_params), 'use kernel height x kernel width x input channels x filters, plus one bias per filter'))

