"""Search strategies measured on recorded learning curves: tables (`table`, `build`), a
simulated sweep that replays a strategy against one (`simulate`), and how it answers a
suggested config from the table (`lookup`)."""
