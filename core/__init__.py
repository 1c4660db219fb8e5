"""The Krowoc domain: settings, models, persistence, services and adapters. Framework-free."""
