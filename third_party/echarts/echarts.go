// Package echarts embeds Apache ECharts 5.6.0 (dist/echarts.min.js from the npm package
// "echarts", Apache-2.0, see LICENSE and NOTICE beside this file) so that charts rendered by
// package plots work offline: HTML pages load the script from a folder next to them instead of
// a CDN, and notebooks inline it.
//
// To update: `npm pack echarts@VERSION`, copy package/dist/echarts.min.js, LICENSE, NOTICE and
// licenses/ here, and change Version.
package echarts

import _ "embed"

// Version is the ECharts release embedded in MinJS.
const Version = "5.6.0"

// FileName is the name go-echarts appends to its assets host when it writes the script tag.
const FileName = "echarts.min.js"

// MinJS is the minified ECharts script (dist/echarts.min.js).
//
//go:embed echarts.min.js
var MinJS []byte
