"""Products and inventory: the catalogue (admin CRUD, keyset listing), stock with reservations that never
oversell, and the change feed the search service follows."""
