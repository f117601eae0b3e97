from otter.test_files import test_case

OK_FORMAT = False

name = "q6a_encoder"
points = 1

@test_case(points=None, hidden=False)
def test_fixed_encoder(fixed_encoder, baseline_encoder):
    from keras import layers
    from cellkit import checks
    checks.check_defined(fixed_encoder, 'fixed_encoder')
    kinds = {type(layer).__name__ for layer in fixed_encoder.layers}
    assert not any((isinstance(layer, layers.BatchNormalization) for layer in fixed_encoder.layers)), f'fixed_encoder still has batch normalisation layers ({sorted(kinds)}): pass batchnorm=False'
    assert not any((isinstance(layer, (layers.MaxPooling2D, layers.GlobalMaxPooling2D)) for layer in fixed_encoder.layers)), f"fixed_encoder still max-pools ({sorted(kinds)}): pass pooling='average'"
    for got, want, what in zip(fixed_encoder.outputs, baseline_encoder.outputs, ('feature map', 'global code')):
        checks.check_answer(tuple(got.shape[1:]), tuple(want.shape[1:]), name=f"shape of fixed_encoder's {what}", hint='same crop, filters=(16, 32, 64) and code_dim=64 as the baseline')

