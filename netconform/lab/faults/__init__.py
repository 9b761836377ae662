"""The lab's named, reversible faults and conditions, and their API endpoints."""
