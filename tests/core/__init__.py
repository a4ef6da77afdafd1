"""The data layer: budgets, migrations, secrets, connections and the answers table."""
