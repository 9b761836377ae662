"""The engine: plan the selected cells, run them (one exec per subject per phase), judge, diagnose."""
