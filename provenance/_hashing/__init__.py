"""_hashing"""
