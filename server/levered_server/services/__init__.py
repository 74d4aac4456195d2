"""Services: keyword-only functions that do the work behind each router."""
