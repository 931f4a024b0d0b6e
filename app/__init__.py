"""PixIT Workbench Gradio app (see app/README.md). `from app import build_demo` works; gradio is
imported only when the app itself is needed, so the pure modules (editing, figures) stay light."""


def __getattr__(name):
    if name in ("build_demo", "launch"):
        from app import main

        return getattr(main, name)
    raise AttributeError(name)
