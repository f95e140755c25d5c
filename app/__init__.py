"""HTTP layer of mnist-serve: FastAPI routes over the NumPy core."""
