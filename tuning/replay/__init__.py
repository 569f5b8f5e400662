"""Search strategies measured on recorded learning curves: tables (`table`, `build`) and a
simulated sweep that replays a strategy against one (`simulate`)."""
