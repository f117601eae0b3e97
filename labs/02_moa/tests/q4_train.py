from otter.test_files import test_case

OK_FORMAT = False

name = "q4_train"
points = 3

@test_case(points=None, hidden=False)
def test_training_ran(history, val_accuracy, epochs):
    from cellkit import checks
    checks.check_defined(history, 'history')
    n = len(history.history.get('loss', []))
    assert n == epochs, f'history holds {n} epochs, expected {epochs}: fit for epochs=epochs'
    assert 'val_loss' in history.history, 'no validation loss in history: pass validation_data=(X_val, y_val)'
    checks.check_in_range(val_accuracy, 0.0, 1.0, name='val_accuracy', hint='a fraction, not a percentage')

