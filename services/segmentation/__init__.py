"""segmentation: customer features, segments, RFM, lifecycle stage, CLV and churn risk."""
