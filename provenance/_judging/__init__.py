"""_judging"""
