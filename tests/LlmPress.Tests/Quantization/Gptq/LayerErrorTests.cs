using LlmPress.Quantization;

namespace LlmPress.Tests.Quantization.Gptq;

public class LayerErrorTests
{
    [Fact]
    public void OutputErrorThroughTheHessianEqualsTheExplicitOne()
    {
        int rows = 300, cols = 20, tokens = 150; // rows > one chunk of 256
        var x = GptqTestData.CorrelatedInputs(tokens, cols, seed: 1);
        var h = GptqTestData.Hessian(x, tokens, cols);
        var w = QuantTestData.Gaussian(rows, cols, 2);
        var q = QuantFormat.Int(3, 8).Quantize(w, rows, cols).Dequantize();
        double num = 0, den = 0;
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
            {
                double y = 0, dy = 0;
                for (int c = 0; c < cols; c++)
                {
                    y += (double)w[r * cols + c] * x[t * cols + c];
                    dy += ((double)w[r * cols + c] - q[r * cols + c]) * x[t * cols + c];
                }
                num += dy * dy;
                den += y * y;
            }
        Assert.Equal(num / den, LayerError.RelativeOutputError(w, q, rows, cols, h), 1e-4 * num / den);
        // QuadraticForm is ‖W·X‖² scaled like H (2/N).
        Assert.Equal(2 * den / tokens, LayerError.QuadraticForm(w, rows, cols, h), 1e-4 * 2 * den / tokens);
    }

    [Fact]
    public void WeightError()
    {
        Assert.Equal(0.25 / 25, LayerError.RelativeWeightError([3f, 4f], [3f, 4.5f]), 1e-12);
        Assert.Equal(0, LayerError.RelativeWeightError([0f], [0f]));
        Assert.Throws<ArgumentException>(() => LayerError.RelativeWeightError([1f], [1f, 2f]));
    }
}
