"""The notebook layer of hierx_nb: the anywidget explorer (``widget.HierxExplorer``), the offline
HTML report and plotly figures. Importing it registers them as the engine's views (``hierx_nb.display``)."""
from .. import display
from .figures import figure
from .report import write_html

display.register("to_html", write_html)
display.register("figure", figure)
try:
    from .widget import HierxExplorer
except ImportError as e:  # anywidget and traitlets come with the notebook extra
    display.unavailable("widget", f"the explorer needs the notebook extra: pip install 'hierx_nb[notebook]' ({e})")
else:
    display.register("widget", HierxExplorer.from_result)
