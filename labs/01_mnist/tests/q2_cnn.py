from otter.test_files import test_case

OK_FORMAT = False

name = "q2_cnn"
points = 3

@test_case(points=None, hidden=False)
def test_cnn_layers(build_cnn):
    from cellkit import checks
    checks.check_defined(build_cnn, 'build_cnn')
    checks.check_layer_types(build_cnn(), ['Conv2D', 'MaxPooling2D', 'Conv2D', 'MaxPooling2D', 'Flatten', 'Dense', 'Dropout', 'Dense'])

@test_case(points=None, hidden=False)
def test_cnn_shapes(build_cnn):
    from cellkit import checks
    model = build_cnn()
    checks.check_output_shape(model, (10,), hint='the last layer needs one unit per digit')
    expected = [(28, 28, 16), (14, 14, 16), (14, 14, 32), (7, 7, 32), (1568,), (64,), (64,), (10,)]
    for i, (layer, want) in enumerate(zip(model.layers, expected)):
        got = tuple(layer.output.shape[1:])
        if got != want:
            hint = 'a 3x3 convolution keeps the image size only with padding="same"' if got[:2] == (want[0] - 2,) * 2 else 'compare the filters, the pool size and the units with the table'
            raise checks.CheckFailed(f'layer {i + 1} ({type(layer).__name__}) outputs {got}, expected {want}: {hint}')
    assert len(model.layers) == len(expected), f'{len(model.layers)} layers, expected {len(expected)}: see the table'

