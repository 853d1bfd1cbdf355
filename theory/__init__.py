"""The paper's statements (registry), their exact algebra (SymPy) and the report."""
