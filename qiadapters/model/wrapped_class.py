"""``AdapterModel[<wrapped class>]``: the subclass of an :class:`~qiadapters.AdapterModel`
class made once per wrapped model class, whose ``forward`` shows the wrapped ``forward``'s
signature (Hugging Face ``Trainer`` reads it from the class), and how pickling rebuilds it.
"""
from __future__ import annotations

import functools
import inspect


def _unspecialised(cls: type) -> type:
    """``cls`` itself, or the class :func:`_for_wrapped` derived it from."""
    return cls.__bases__[0] if "_wrapped_class" in cls.__dict__ else cls


@functools.cache
def _for_wrapped(cls: type, wrapped: type) -> type:
    """``cls`` (an :class:`AdapterModel` class) specialised to models of class ``wrapped``:
    a subclass, named ``cls[wrapped]``, whose ``forward`` carries ``wrapped.forward``'s
    signature (``__signature__``) and otherwise is ``cls.forward``.

    Why: ``transformers.Trainer`` reads the model's forward signature -- for the dataset
    columns it keeps, and, from the *class* (``find_labels(type(model))``,
    ``can_return_loss``), for the labels that give ``eval_loss`` -- and
    ``cls.forward(*args, **kwargs)`` shows none.  One class per ``(cls, wrapped)``, made once.
    A ``wrapped.forward`` that is not a plain function (whose first parameter is ``self``)
    or has no readable signature leaves ``cls`` as it is.
    """
    if not inspect.isfunction(wrapped.forward):
        return cls
    try:
        signature = inspect.signature(wrapped.forward)
    except (TypeError, ValueError):
        return cls

    def forward(self, *args, **kwargs):
        return cls.forward(self, *args, **kwargs)

    forward.__signature__ = signature
    forward.__doc__ = cls.forward.__doc__
    name = f"{cls.__name__}[{wrapped.__name__}]"
    return type(cls)(name, (cls,), {"forward": forward, "_wrapped_class": wrapped,
                                    "__module__": cls.__module__,
                                    "__qualname__": f"{cls.__qualname__}[{wrapped.__qualname__}]"})


def _rebuild(cls: type, wrapped: type) -> "AdapterModel":
    """An empty instance of ``_for_wrapped(cls, wrapped)``; unpickling then sets its state."""
    return object.__new__(_for_wrapped(cls, wrapped))
