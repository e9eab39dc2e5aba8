"""The Streamlit dashboard, its plotly figures and the report export."""
