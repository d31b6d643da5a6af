"""What the process tells about itself: counters for the metrics scrape and structured logging.

At the bottom of the layers: any module may count or log.
"""
