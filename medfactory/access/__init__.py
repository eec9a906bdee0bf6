"""Who may do what with the store's data: users and roles, and the audit log."""
