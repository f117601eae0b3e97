from otter.test_files import test_case

OK_FORMAT = False

name = "q4_count"
points = 2

@test_case(points=None, hidden=False)
def test_patches(patches_64, patches_224):
    from cellkit import checks
    checks.check_answer(patches_64, 4, name='patches_64', hint='count the patches along one side of the image, then the whole grid')
    checks.check_answer(patches_224, 49, name='patches_224', hint='count the patches along one side of the image, then the whole grid')

