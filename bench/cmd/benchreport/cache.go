package main

import (
	"fmt"
	"path/filepath"

	"github.com/ociclip/ociclip/internal/s3test"
)

// cache times `ociclip index --cache s3://...` on the image in dir against
// gofakes3 (an S3 server) on 127.0.0.1: without a cache, cold (an empty
// bucket prefix: every layer indexed and uploaded) and warm (every layer
// downloaded, no blob read), interleaved, and reports the bytes moved.
func (r *reporter) cache(dir string) error {
	srv, err := s3test.New()
	if err != nil {
		return err
	}
	defer srv.Close()
	env := s3test.Env()
	src := "oci:" + dir + ":" + ref
	out := filepath.Join(r.tmp, "cache.clip")
	var none, cold, warm series
	var upCold, downWarm int64
	var reqCold, reqWarm int
	for i := -1; i < *runs; i++ { // run -1 warms the page cache, untimed
		url := fmt.Sprintf("%s&prefix=run%d/", srv.URL(), i+1)
		w, rss, err := run(*ociclipBin, "index", "-q", src, "-o", out)
		if err != nil {
			return err
		}
		n0 := len(srv.Requests())
		in0, _ := srv.Bytes()
		wc, rssc, err := runEnv(env, *ociclipBin, "index", "-q", src, "-o", out, "--cache", url)
		if err != nil {
			return err
		}
		in1, out1 := srv.Bytes()
		n1 := len(srv.Requests())
		ww, rssw, err := runEnv(env, *ociclipBin, "index", "-q", src, "-o", out, "--cache", url)
		if err != nil {
			return err
		}
		_, out2 := srv.Bytes()
		if i < 0 {
			continue
		}
		none.walls, none.rss = append(none.walls, w), append(none.rss, rss)
		cold.walls, cold.rss = append(cold.walls, wc), append(cold.rss, rssc)
		warm.walls, warm.rss = append(warm.walls, ww), append(warm.rss, rssw)
		upCold, downWarm = in1-in0, out2-out1
		reqCold, reqWarm = n1-n0, len(srv.Requests())-n1
	}
	nodes, usize, err := summary([]string{"index", "-q", src, "-o", out})
	if err != nil {
		return err
	}
	fmt.Println("## Layer cache through an object store (gofakes3, S3 API over HTTP on 127.0.0.1)")
	fmt.Println()
	fmt.Printf("gzip image, %s uncompressed, %d nodes; `--cache s3://...` with a fresh bucket prefix per cold run.\n\n", mib(usize), nodes)
	fmt.Println("| run | wall time | RSS | S3 requests | uploaded | downloaded |")
	fmt.Println("|---|---|---|---|---|---|")
	fmt.Printf("| no cache | %s | %s | — | — | — |\n", none.String(), none.rssString())
	fmt.Printf("| cold (empty bucket: index every layer, upload its entry) | %s | %s | %d | %s | — |\n", cold.String(), cold.rssString(), reqCold, mib(upCold))
	fmt.Printf("| warm (every layer's entry downloaded, no layer blob read) | %s | %s | %d | — | %s |\n", warm.String(), warm.rssString(), reqWarm, mib(downWarm))
	fmt.Printf("\nwarm / no cache: %s; cold / no cache: %s\n\n", ratioString(warm.walls, none.walls), ratioString(cold.walls, none.walls))
	return nil
}
