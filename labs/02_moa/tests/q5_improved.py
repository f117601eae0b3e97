from otter.test_files import test_case

OK_FORMAT = False

name = "q5_improved"
points = 2

@test_case(points=None, hidden=False)
def test_improved_parts(build_improved):
    from cellkit import checks, lenet
    checks.check_defined(build_improved, 'build_improved')
    model = build_improved()
    checks.check_output_shape(model, (6,))
    kinds = lenet.layer_kinds(model)
    for kind, n in (('RandomFlip', 1), ('PerImageStandardization', 1), ('BatchNormalization', 3), ('Conv2D', 3), ('GlobalAveragePooling2D', 1)):
        assert kinds.count(kind) == n, f"expected {n} {kind} layer(s), found {kinds.count(kind)}: see the task's list"
    assert 'Flatten' not in kinds, 'global average pooling replaces Flatten and the Dense(1024) layer'
    slow = [layer for layer in model.layers if type(layer).__name__ == 'BatchNormalization' and layer.momentum != 0.9]
    assert not slow, 'give each BatchNormalization momentum=0.9 (the default 0.99 lags behind 8 steps per epoch)'

