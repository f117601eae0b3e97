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
    for kind, n in (('RandomFlip', 1), ('BatchNormalization', 3), ('Dropout', 2), ('Conv2D', 3)):
        assert kinds.count(kind) >= n, f'expected at least {n} {kind} layer(s), found {kinds.count(kind)}'

