from otter.test_files import test_case

OK_FORMAT = False

name = "q1_lenet"
points = 3

@test_case(points=None, hidden=False)
def test_lenet_layers(build_lenet):
    from cellkit import checks, lenet
    checks.check_defined(build_lenet, 'build_lenet')
    checks.check_layer_types(build_lenet(), lenet.LENET_LAYER_TYPES)

@test_case(points=None, hidden=False)
def test_lenet_total(build_lenet):
    from cellkit import checks
    checks.check_output_shape(build_lenet(), (6,), hint='one output per MoA, with a softmax')
    checks.check_param_count(build_lenet(), 1121062, hint="is the first convolution strided (strides=2) and are all paddings 'same'?")

