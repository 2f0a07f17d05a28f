namespace LlmPress.Bench;

/// <summary>A tiny fork-join body for the hand-off measurement: 200 square roots per chunk.</summary>
internal sealed class SqrtJob(double[] sink) : LlmPress.Numerics.IChunkJob
{
    public void RunChunk(int chunk)
    {
        double v = 0;
        for (int j = 0; j < 200; j++) v += Math.Sqrt(j + chunk);
        sink[chunk] = v;
    }
}
