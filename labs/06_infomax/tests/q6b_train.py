from otter.test_files import test_case

OK_FORMAT = False

name = "q6b_train"
points = 1

@test_case(points=None, hidden=False)
def test_fixed_history(fixed_history, epochs):
    from cellkit import checks
    checks.check_defined(fixed_history, 'fixed_history')
    h = getattr(fixed_history, 'history', fixed_history)
    assert 'mi_loss' in h, f'expected a keras History with mi_loss, got keys {sorted(h)}: return train_infomax(...)'
    checks.check_answer(len(h['mi_loss']), epochs, name='epochs trained', hint='use train_infomax, same budget')
    assert h['mi_loss'][-1] < h['mi_loss'][0], f"the JSD loss did not fall ({h['mi_loss'][0]:.3f} -> {h['mi_loss'][-1]:.3f}): did you train fixed_encoder?"

