"""Marketo REST: OAuth, Sync Leads, Get Leads and Describe."""
