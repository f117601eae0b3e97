from otter.test_files import test_case

OK_FORMAT = False

name = "q2_cnn"
points = 3

@test_case(points=None, hidden=False)
def test_cnn_layers(build_cnn):
    from cellkit import checks
    checks.check_defined(build_cnn, 'build_cnn')
    checks.check_layer_types(build_cnn(), ['Conv2D', 'Conv2D', 'MaxPooling2D', 'Dropout', 'Flatten', 'Dense', 'Dropout', 'Dense'])

@test_case(points=None, hidden=False)
def test_cnn_output(build_cnn):
    from cellkit import checks
    checks.check_output_shape(build_cnn(), (10,), hint='the last layer needs one unit per digit')

