"""Device drivers: each takes its backend as a keyword argument; fakes ship beside them."""
