"""The grading machinery, as it was before the student's cells ran: snapshot, then restore before the tests.

Standard library only; loaded by the worker from this file, never put in ``sys.modules``.  A student's cell
can replace ``cellkit.checks.check_close`` with a no-op, patch otter's ``test_case.call_func``, a builtin,
``numpy.mean`` or the worker's own functions; the hidden tests would then pass whatever was computed.
:func:`snapshot` records, for each module the tests rely on, its ``sys.modules`` entry, every attribute,
the code of its functions and the attributes of its classes; the returned ``restore`` puts back whatever
changed and returns the list of changes in words (the row is then ``suspicious``).
"""

import builtins
import sys
import types

# names IPython itself adds to or removes from builtins around each cell
_VOLATILE_BUILTINS = {"exit", "quit", "get_ipython", "display", "copyright", "credits", "license", "help"}


def snapshot(modules):
    """Return ``restore()``, which undoes any change to ``modules`` made after this call and says what it undid."""
    saved = []
    for module in modules:
        attrs = dict(vars(module))
        codes, classes = {}, {}
        for name, value in attrs.items():
            if isinstance(value, types.FunctionType):
                codes[name] = (value, value.__code__, value.__defaults__, value.__kwdefaults__)
            elif isinstance(value, type) and getattr(value, "__module__", "") == module.__name__:
                classes[name] = (value, dict(vars(value)))
        registered = sys.modules.get(module.__name__) is module  # the worker script is no longer __main__
        saved.append((module.__name__, module, vars(module), attrs, codes, classes, registered))
    builtin_dict, builtin_saved = vars(builtins), dict(vars(builtins))
    modules_dict = sys.modules

    def restore():
        changed = []
        for name, value in builtin_saved.items():  # first: everything below uses builtins
            if name not in _VOLATILE_BUILTINS and not name.startswith("_") and builtin_dict.get(name) is not value:
                builtin_dict[name] = value
                changed.append(f"builtins.{name}")
        for mod_name, module, namespace, attrs, codes, classes, registered in saved:
            if registered and modules_dict.get(mod_name) is not module:
                modules_dict[mod_name] = module
                changed.append(f"sys.modules[{mod_name!r}]")
            for name, value in attrs.items():
                if namespace.get(name) is not value:
                    namespace[name] = value
                    changed.append(f"{mod_name}.{name}")
            for name, (func, code, defaults, kwdefaults) in codes.items():
                if func.__code__ is not code or func.__defaults__ is not defaults \
                        or func.__kwdefaults__ is not kwdefaults:
                    func.__code__, func.__defaults__, func.__kwdefaults__ = code, defaults, kwdefaults
                    changed.append(f"{mod_name}.{name} (its code)")
            for name, (cls, members) in classes.items():
                for attr, value in members.items():
                    if attr not in ("__dict__", "__weakref__", "__doc__") and vars(cls).get(attr) is not value:
                        try:
                            type.__setattr__(cls, attr, value)
                        except (TypeError, AttributeError):
                            continue
                        changed.append(f"{mod_name}.{name}.{attr}")
        return changed

    return restore
