"""The Streamlit dashboard, its plotly figures and the report export."""

from .serve import serve
from .status_style import STATUS_STYLE, StatusStyle

__all__ = ["STATUS_STYLE", "StatusStyle", "serve"]
