"""The Streamlit dashboard, its plotly figures and the report export."""

from .serve import serve

__all__ = ["serve"]
