"""Where runs execute: one engine per `runner:` name (registry), and what every engine shares."""
