"""The notebook layer of hierx_nb: the anywidget explorer (``widget.HierxExplorer``)."""
