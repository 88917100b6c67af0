/// Quantize: pure numeric kernels on buffers; knows nothing of files.
public enum QuantizeModule {}
